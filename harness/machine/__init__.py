"""The environment a run happens in: package versions and device fingerprint (`env`), machine speed and peak FLOP/s
(`speed`), model FLOPs, GPU datasheet peaks and MFU (`flops`)."""
