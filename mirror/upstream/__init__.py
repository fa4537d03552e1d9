"""Other registries as sources: a client for Terraform's module registry protocol
(``client``), go-getter download locations followed into archives (``sources``, ``fetch``,
``unpack``), and the pure parts the config validates with (``specs``).

Importing the package imports nothing else, so ``mirror.config`` can use ``specs`` cheaply.
"""
