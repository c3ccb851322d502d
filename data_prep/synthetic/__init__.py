"""The embedded default data set: handwriting-style pages rendered from free fonts
and natural running text, with ALTO ground truth (see :mod:`.dataset`)."""
