"""Round locations and the expert's talk for the real-game fixture (own list, not collect/demo's).

Each place has the objects its scene shows (a sign with its text, bollards, poles, a house,
road lines) and one spoken clue phrase per object, in auto-caption style: lower case, no
punctuation. `guess_km` is how far off the player's guess lands; points follow from it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    country: str
    country_code: str
    city: str
    lat: float
    lng: float
    sky: tuple[int, int, int]
    ground: tuple[int, int, int]
    centre_line: tuple[int, int, int]
    sign_text: str
    # (object kind, spoken phrase): the phrase is said while the object is on screen
    clues: tuple[tuple[str, str], ...]
    conclusion: str


PLACES = {
    "tromso": Place(
        "Norway", "NO", "Tromso", 69.6492, 18.9553, (150, 170, 200), (70, 95, 60), (235, 190, 30), "TROMSO 12",
        (("sign", "that sign says tromso so this is northern norway"),
         ("bollard", "black bollards with a yellow reflector are really typical for norway"),
         ("house", "and this red wooden house with a white trim")),
        "yeah this is norway i will go up north near tromso"),
    "curitiba": Place(
        "Brazil", "BR", "Curitiba", -25.4284, -49.2733, (120, 175, 235), (150, 110, 70), (240, 240, 240),
        "CURITIBA 48",
        (("sign", "the sign says curitiba which is in southern brazil"),
         ("pole", "this concrete pole with the cross shape is a brazil pole"),
         ("house", "low houses with a red tile roof")),
        "so brazil for sure and i think parana around curitiba"),
    "perth": Place(
        "Australia", "AU", "Perth", -31.9523, 115.8613, (110, 165, 230), (190, 150, 90), (245, 245, 245), "PERTH 30",
        (("sign", "green sign that says perth so western australia"),
         ("bollard", "this white bollard with a red reflector is australian"),
         ("pole", "and a stobie pole type of thing")),
        "this has to be australia i am going to click near perth"),
    "osaka": Place(
        "Japan", "JP", "Osaka", 34.6937, 135.5023, (160, 180, 210), (110, 110, 105), (245, 245, 245), "OSAKA 5",
        (("sign", "blue sign for osaka so we are in japan"),
         ("pole", "so many wires on this pole which is very japan"),
         ("house", "this compact house with a grey roof")),
        "japan for sure and probably close to osaka"),
    "tartu": Place(
        "Estonia", "EE", "Tartu", 58.3780, 26.7290, (170, 185, 205), (85, 115, 70), (245, 245, 245), "TARTU 22",
        (("sign", "this sign says tartu which is in estonia"),
         ("bollard", "the estonian bollard is white with a black band"),
         ("house", "a wooden house like this is common in the baltics")),
        "estonia and i will guess near tartu"),
    "cusco": Place(
        "Peru", "PE", "Cusco", -13.5319, -71.9675, (100, 150, 230), (160, 120, 80), (235, 190, 30), "CUSCO 40",
        (("sign", "the sign says cusco and that is peru"),
         ("house", "brown adobe houses and mountains in the back"),
         ("pole", "this pole is painted at the bottom")),
        "peru in the andes i think around cusco"),
    "nairobi": Place(
        "Kenya", "KE", "Nairobi", -1.2921, 36.8219, (130, 175, 220), (170, 100, 60), (245, 245, 245), "NAIROBI 16",
        (("sign", "this sign says nairobi so we are in kenya"),
         ("house", "red soil everywhere and a tin roof house")),
        "kenya close to nairobi"),
    "kaunas": Place(
        "Lithuania", "LT", "Kaunas", 54.8985, 23.9036, (165, 180, 205), (90, 120, 70), (245, 245, 245), "KAUNAS 9",
        (("sign", "the sign says kaunas so lithuania"),
         ("bollard", "bollard with a red reflector")),
        "lithuania somewhere around kaunas"),
    "calgary": Place(
        "Canada", "CA", "Calgary", 51.0447, -114.0719, (125, 165, 220), (120, 130, 80), (235, 190, 30), "CALGARY 60",
        (("sign", "green sign for calgary this is alberta in canada"),
         ("pole", "wooden pole and a yellow center line")),
        "canada i will put it near calgary"),
    "izmir": Place(
        "Turkey", "TR", "Izmir", 38.4237, 27.1428, (120, 170, 230), (150, 140, 100), (245, 245, 245), "IZMIR 25",
        (("sign", "the sign says izmir so turkey"),
         ("house", "white houses with flat roofs")),
        "turkey on the west coast near izmir"),
    "bogota": Place(
        "Colombia", "CO", "Bogota", 4.7110, -74.0721, (130, 165, 215), (95, 130, 70), (235, 190, 30), "BOGOTA 14",
        (("sign", "this sign says bogota so colombia"),
         ("pole", "the pole has a yellow and black sleeve")),
        "colombia and i guess close to bogota"),
    "tucson": Place(
        "United States", "US", "Tucson", 32.2226, -110.9747, (110, 160, 230), (190, 160, 110), (235, 190, 30),
        "TUCSON 35",
        (("sign", "green sign that says tucson so arizona in the united states"),
         ("pole", "wooden pole and a double yellow line")),
        "united states arizona near tucson"),
}

FILLERS = (
    "okay so what else do we have here",
    "let me just look around a bit",
    "i really like this kind of location honestly",
    "the road is in pretty good condition",
    "there is not a lot of traffic out here",
    "let me check the other direction real quick",
    "i think we have seen enough but let me be sure",
    "the vegetation looks fairly green",
    "the sun is pretty high in the sky",
    "i am trying to remember what the meta is for this",
    "so that is definitely something we can use",
    "we should not overthink this one",
    "this is a nice and clean camera",
    "i want to be careful here because this could be a trap",
    "let me zoom in on that for a second",
    "alright i think i know where we are",
)

CHAT_LINES = (
    ("geo_fan22", "this is so easy"),
    ("pinpointer", "5k incoming"),
    ("mapnerd", "its the bollard"),
    ("kiwi_kid", "next round pls"),
    ("roadlines", "round 3 was rigged"),
    ("lurker99", "hi from poland"),
    ("metaking", "check the poles"),
    ("sunny", "4000 points easy"),
    ("drivesafe", "LUL"),
    ("plonker", "gg"),
)
