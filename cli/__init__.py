"""Command-line front end of clss (installed as the ``clss_cli`` package, console script ``clss``)."""
