"""The fake Nomad agent: HCL parser (``jobspec``), API schema (``schema``), defaults and
validation (``canonical``), state and scheduler (``state``), HTTP routes (``api``)."""
