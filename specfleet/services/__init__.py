"""Use cases shared by the command line, the web console and its API, each written once.

A use case takes plain arguments (an engine, who acts, parameter objects), performs one thing a
person asks for and returns a result value; it raises the errors of :mod:`core.errors`. Who may
act is the caller's business: web handlers pass an ``authorize`` check (their roles), the CLI
acts as its user. Nothing here knows about Typer, FastAPI or Rich.
"""
