"""End-to-end runs of the paper workflows through the training engine on tiny real-format data."""
