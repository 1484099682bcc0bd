"""What the tests, the benchmarks and the reliability run share to drive the real programs: free ports,
HTTP requests, the live server on loopback (live_server.py), seeded photos (photos.py) and model
artifacts with random weights made by training's own export (artifacts.py). Never shipped in an image."""
