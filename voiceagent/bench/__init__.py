"""``voiceagent bench``: latency, turn-taking and accuracy on a reproducible spoken corpus.

One WAV timeline of espeak-ng questions with known boundaries (``corpus``) is
played in real time into the real pipeline (``runner``), into a second run where
the user talks over each reply (``bench.bargein``), through a naive sequential
pipeline made of the same models (``baseline``) and optionally into an external
peer (``pipecat_peer``). ``measure`` turns events and the aligned output into
per-utterance figures, ``report`` into the summary, the Markdown and the JSON,
``plot`` into a PNG; ``command`` runs it all.
"""
