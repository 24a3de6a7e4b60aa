"""Hook implementations of crystalgf-llm (announced through the ``crystalgf`` entry-point group).

It registers no plugin yet: issue 4: the `llm-*` constraint generators.
"""
