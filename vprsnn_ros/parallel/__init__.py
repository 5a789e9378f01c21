"""Where work runs: threads of this process, or a Dask cluster, executing pure tasks.

Its own layer, below training and evaluation, which both hand it tasks.
"""
