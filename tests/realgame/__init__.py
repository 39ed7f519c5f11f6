"""A second, independent fixture corpus that looks like the real GeoGuessr game.

`collect/demo` renders the corpus the toolkit was developed on; a segmenter that only ever
sees it can only be shown to read its own drawings. This package draws its own videos (own
fonts, layouts, colours, resolutions and frame rates; streamer additions: facecam, intro,
sponsor segment, chat) with no code shared with `collect/demo`, and writes a `truth.json`
that `benchmarks/segment_accuracy.py` scores a `collect run` against.

    from realgame.corpus import generate_corpus      # tests/ is on sys.path under pytest
    truth = generate_corpus(out_dir)                 # videos.json, media/, api/, truth.json

The corpus folder has the layout `collect.demo.server.DemoServer` serves (the HTTP serving
code is shared on purpose: the protocol is yt-dlp's and GeoGuessr's, not the drawings).
"""
