"""Build of the optional compiled key-derivation accelerator; all other settings are in
pyproject.toml.

The extension is optional: without a working C compiler the install still succeeds and
steps.ccdb falls back to its pure-Python derivation.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "steps.ccdb._kdf",
            sources=["steps/ccdb/_kdf.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
