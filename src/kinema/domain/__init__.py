"""The vocabulary every part of Kinema shares; imports nothing else of ours."""
