"""Data set readers: the seed's CSV lookup table, class folders, video frames and the split.

Everything here runs on the Pi too (numpy + OpenCV only), so the labelling tool, the trainer and
the daemon read the same format the same way.
"""
