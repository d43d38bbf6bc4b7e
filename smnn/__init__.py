"""S-MNN: the Scalable Mechanistic Neural Network solver in pure PyTorch."""
