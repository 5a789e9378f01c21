"""Input: images, folders, CSVs, rosbags and image messages, preprocessed for the network.

Depends on the foundation (errors, atomic writes) only, never on the SNN.
"""
