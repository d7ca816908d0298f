"""The Gradio front end of the app: tabs that wire `colorize` and `survey` to Gradio, and hold no other logic.

- `colorize_tabs`  the Colorize and Batch tabs (over `colorize.catalog.ModelCatalog`)
- `survey_tab`     the "Real or fake?" tab (over `survey.participant.ParticipantFlow`) and its admin view
- `components`     a photo input that hands over the file itself, plain error sentences, the static files
- `files`          the scratch folder (removed on every exit) and the example photos
- `settings`       the app's settings: flags, else environment variables, else defaults
- `limits`         request bodies bounded before anything parses them, uploads off where none are taken
- `static/`        the app's CSS and JavaScript

`app.py` (the Hugging Face Spaces entry point) assembles them.
"""
