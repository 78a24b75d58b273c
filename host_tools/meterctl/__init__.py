"""``meterctl``: the bench tool's command line, one module per command family.

``cli`` builds the click group and registers every command explicitly; ``common`` holds the
plumbing the commands share (link options, client factory, error -> exit code, JSON, console).
The command modules import ``common`` and the host library (``host_tools.client``, ``format``,
``vend``, ``flash`` ...), never ``cli``. ``python -m host_tools.meterctl`` runs it; so does the
``meterctl`` console script (``make setup`` installs it in ``.venv/bin``).
"""
