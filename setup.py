"""The one compiled part: FedAvg's one-pass fold (disco/aggregation/_fold.c).

It is optional: without a C compiler the package installs and `disco.aggregation.fold` uses its
numpy version, which computes the same sums more slowly. Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "disco.aggregation._fold",
            sources=["src/disco/aggregation/_fold.c"],
            libraries=["m"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
