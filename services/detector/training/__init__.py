"""Training the detector's models (torch, scikit-learn): the dataset manifest they read, their
features, fitting, metrics, and the ONNX graphs (export, int8) they are served with."""
