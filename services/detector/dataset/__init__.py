"""Building labelled real/fake speech datasets for training and evaluating the detector."""
