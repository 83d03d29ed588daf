"""The model zoo, written in the `ppl` DSL, with its command line (`python -m models NAME`).

Each model is a module `models/NAME.py` that defines `add_arguments(parser)` and `main(args)`;
`python -m models` discovers them, so adding a model needs no registration.
"""

__all__: list[str] = []
