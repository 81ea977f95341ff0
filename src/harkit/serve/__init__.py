"""HTTP / WebSocket service around a predictor (``harkit serve``); needs ``harkit[serve]``.

FastAPI and uvicorn are imported only when an app is built or served.
"""

from harkit.serve.app import create_app, demo_recording_for_run, model_info, serve

__all__ = ["create_app", "demo_recording_for_run", "model_info", "serve"]
