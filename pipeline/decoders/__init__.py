"""CTC decoders behind one interface (:class:`pipeline.decoders.base.Decoder`).

* :mod:`~pipeline.decoders.base`: the :class:`Hypothesis` every decoder returns, the
  ``Decoder`` protocol, helpers on frame posteriors shared by the beam searches;
* :mod:`~pipeline.decoders.config`: :class:`DecodeConfig`, the decoder names;
* :mod:`~pipeline.decoders.greedy`: best path ("RNN alone"), also training's dev CER;
* :mod:`~pipeline.decoders.pyctc`: pyctcdecode beam search, with or without the word LM;
* :mod:`~pipeline.decoders.flashlight`: flashlight-text lexicon and character-LM decoders;
* :mod:`~pipeline.decoders.pool`: the decoder a config names, and decoding over processes.

This package imports nothing at import time, so training can take the greedy decoder
without loading KenLM, pyctcdecode or flashlight.
"""
