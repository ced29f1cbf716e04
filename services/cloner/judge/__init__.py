"""The speaker judge: a speaker-verification model trained here, independent of GE2E.

It exists to *measure* clones (``vcfad eval-clone``), never to make them: no part of the cloner
(enrollment, style search, synthesis) may import it, so the cloner cannot optimise against its
own referee (an import-linter contract in pyproject.toml enforces that).

- :mod:`.front_end`: the telephone-band log-mel front end (the same for training and scoring);
- :mod:`.data`: speakers from the public-source catalogue, features cached once;
- :mod:`.network`: the x-vector network (TDNN, attentive statistics pooling) and its AAM loss;
- :mod:`.train`: training, ONNX export with a parity check, the verification report;
- :mod:`.score`: :class:`~.score.SpeakerJudge`, the ONNX model that ``eval-clone`` uses.
"""
