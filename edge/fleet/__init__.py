"""A fleet of stations on one broker: what each station says about itself (``report``) and
what the workstation makes of it: ``watch`` (a live subscriber), ``status`` (``pi-inspect
fleet status``) and ``web``/``server`` (``pi-inspect fleet serve``, the live page)."""
