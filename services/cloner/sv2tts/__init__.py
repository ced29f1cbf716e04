"""Faithful inference code for Real-Time-Voice-Cloning's (RTVC) published SV2TTS checkpoints.

Written from the published architecture (our own code), so ``encoder.pt``, ``synthesizer.pt`` and
``vocoder.pt`` (``{"model_state": ...}`` dicts) load with strict key and shape checks:

* :mod:`.encoder` — GE2E speaker encoder: 40-mel frames → LSTM 3×256 → linear 256 → ReLU → L2;
* :mod:`.synthesizer` — Tacotron-1-style: 16 kHz, 80 mels, hop 200, r = 2, the speaker
  embedding concatenated to every encoder output;
* :mod:`.vocoder` — WaveRNN, RAW 9-bit mu-law, upsampling 5·5·8 (= hop 200);
* :mod:`.text` — RTVC's character set and English cleaners.

The checkpoints are not shipped (no offline copy exists); ``vcfad models download sv2tts`` fetches
them from Hugging Face (``CorentinJ/SV2TTS``). See docs/cloning.md.
"""
