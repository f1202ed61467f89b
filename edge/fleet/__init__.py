"""A fleet of stations on one broker: what each station says about itself (``report``) and what
the workstation makes of it (``status``: ``pi-inspect fleet status``)."""
