"""Audio in: microphone capture, WAV replay, the ring buffer, WAV I/O, sensor health, mic check, recording."""
