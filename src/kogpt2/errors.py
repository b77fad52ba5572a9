"""The one error type users see: a clear one-line message, exit code 2 from the CLI."""


class KoGPT2Error(Exception):
    """Bad input or configuration. The message names the problem and the fix.

    The CLI prints ``error: <message>`` on one line and exits with status 2;
    the HTTP server maps it to a 4xx JSON body.
    """
