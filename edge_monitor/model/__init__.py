"""The model side: bundle and model.json, detectors, fusion, threshold, TFLite backend, scorer, fitting, learning."""
