"""Edge Monitor: unsupervised acoustic anomaly detection for machines, on the edge.

The runtime package. It must stay importable on a Raspberry Pi without
TensorFlow, matplotlib or scikit-learn: import only NumPy, ``scipy.fft``,
sounddevice, paho-mqtt, PyYAML and structlog from modules in this package.
"""

__version__ = "0.1.0"
