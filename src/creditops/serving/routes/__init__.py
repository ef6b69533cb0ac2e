"""The HTTP routes of the scoring service, one module per concern.

``scoring`` (``/predict``, ``/invocations``), ``feedback`` (``/feedback``),
``status`` (``/health``, ``/ready``, ``/model``, ``/metrics``) and ``admin``
(``/admin/reload``). The scoring routes read and parse their bodies themselves
(:mod:`creditops.serving.bodies`) and answer with pre-serialised orjson bytes:
FastAPI's generic body and response handling costs more than scoring one
applicant. The request and response models still document every route at
``/docs``.
"""
