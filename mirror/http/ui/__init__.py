"""The registry's web UI: server-rendered HTML pages, with no front-end build.

``pages`` holds the handlers and ``routes()`` (with ``provider_pages`` and ``namespace_pages``;
``module_page`` builds a module page's tabs, version picker and banners); ``session`` how a
browser is authenticated (the ``mirror_token`` cookie) and who the header names; ``readme`` renders README markdown safely; ``usage`` writes the
``module`` block a page offers to copy. Templates (Jinja2, autoescaped) and the one CSS and one
JS file ship inside the package.
"""
