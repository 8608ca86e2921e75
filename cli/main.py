"""Entry point of the ``clss`` command: a click group; each command is a thin layer over the library."""

from __future__ import annotations

import click

from clss import __version__
from clss_cli.compare import compare_command
from clss_cli.data import data_group
from clss_cli.datasets import datasets_command
from clss_cli.predict import predict_command
from clss_cli.reproduce import reproduce_command
from clss_cli.seriate import seriate_command
from clss_cli.train import eval_command, methods_command, train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clss")
@click.option("--debug", is_flag=True,
              help="Show the full traceback of any error (also: environment variable CLSS_DEBUG=1).")
def main(debug: bool) -> None:
    """clss: semi-supervised deep regression with spectral seriation.

    Exit codes: 0 success, 2 bad input (a one-line error), 1 an internal error.
    """


main.add_command(seriate_command)
main.add_command(train_command)
main.add_command(eval_command)
main.add_command(methods_command)
main.add_command(predict_command)
main.add_command(datasets_command)
main.add_command(data_group)
main.add_command(reproduce_command)
main.add_command(compare_command)


if __name__ == "__main__":
    main()
