"""``sam-app``: an interactive Gradio app on fastsam_rt (or the PyTorch reference) for trying a model by clicking.

``session`` holds the app's logic without Gradio (tested directly); ``ui`` lays it out in Gradio, which is
imported only there (the ``[app]`` extra).
"""
