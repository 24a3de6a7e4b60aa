"""Hook implementations of crystalgf-diffusion (announced through the ``crystalgf`` entry-point group).

It registers no plugin yet: issue 3: the `diffusion` structure generator.
"""
