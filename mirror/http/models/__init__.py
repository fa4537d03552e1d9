"""The HTTP API's shapes, declared once with pydantic: request models (query parameters and JSON
bodies) that the handlers validate input with, and response models. ``mirror.http.openapi``
generates the OpenAPI document from them. One module per resource; ``base`` holds what they share.
"""
