"""``pi-inspect label``: the seed's keyboard labelling loop as a small local web app.

``sources`` gives frames (video or image folder), ``store`` writes them into the output folder
(lookup table or class folders), ``suggest`` turns a pulled folder's ``samples.csv`` into
suggestions and a most-uncertain-first order, ``session`` validates what a browser asks for,
``app`` is the Flask app (fixed routes, strict checks) and ``server`` serves it with waitress on
127.0.0.1; the single page the browser shows is ``templates/index.html`` with
``static/label.js`` and ``static/label.css``.
"""
