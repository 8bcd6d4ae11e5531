"""The diffusers engine: open-weight image-to-video models (Wan 2.2, LTX-Video) on a GPU.

Everything heavy (torch, diffusers) is imported by `engine` only; `config` is light, so the
service can describe the engine without the ``diffusers`` extra installed.
"""
