"""Fixed artifact names inside one video folder (OUT/videos/<safe video id>/).

Stages find each other's outputs through these names only.
"""
INFO_JSON = "info.json"  # yt-dlp info dict (secrets removed)
MEDIA_JSON = "media.json"  # {"video": rel path|None, "audio": rel path|None, "captions": {"manual": rel|None, "auto": rel|None}}
TRANSCRIPT_JSON = "transcript.json"  # collect.records.Transcript
CHALLENGE_JSON = "challenge.json"  # collect.records.Challenge
CHALLENGE_RAW_DIR = "raw"  # raw API responses: raw/challenge_<token>.json, raw/rounds_<token>.json
ROUNDS_JSON = "rounds.json"  # list[collect.records.RoundSpan]
FRAMES_DIR = "frames"  # frames/<name>.jpg
FRAMES_INDEX = "frames/index.json"  # list[collect.records.Frame]
STREETVIEW_DIR = "streetview"  # streetview/round_<k>.jpg (stitched panorama) + index.json
STREETVIEW_INDEX = "streetview/index.json"
