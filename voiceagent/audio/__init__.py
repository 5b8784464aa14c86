"""Audio in and out: formats, files, pipes, devices and the playback queue."""
