"""Real places the demo corpus plays in: true coordinates, local-script names and the clues
an expert would name there (what is drawn on screen and what the narrator says).

Each clue is (kind, phrase, category): `kind` says what the scene draws for it
("sign", "distance_sign", "bollard", "pole", "trees", "mountains", "building", "road"),
`phrase` is what the narrator says while that object is in view.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    city: str
    local_name: str  # as written on signs, in the local script
    country: str
    country_code: str  # ISO 3166-1 alpha-2
    lat: float
    lng: float
    script: str
    line_colour: str  # centre line: "yellow" | "white"
    drives_left: bool
    sky: tuple[int, int, int]
    ground: tuple[int, int, int]
    clues: tuple[tuple[str, str, str], ...]
    other_town: str  # a second real town on the distance sign, local script


PLACES: tuple[Place, ...] = (
    Place("Almaty", "Алматы", "Kazakhstan", "KZ", 43.2389, 76.8897, "Cyrillic", "white", False,
          (150, 190, 230), (160, 150, 110),
          (("sign", "okay so we have a Cyrillic sign here that says Almaty", "language"),
           ("distance_sign", "that sign has the Kazakh letter with the little tail so this is Kazakh not Russian", "language"),
           ("mountains", "big snowy mountains in the south that looks like the Tian Shan", "landscape"),
           ("pole", "the concrete utility pole with the holes is very post soviet", "utility poles")),
          "Қапшағай"),
    Place("Thessaloniki", "Θεσσαλονίκη", "Greece", "GR", 40.6401, 22.9444, "Greek", "white", False,
          (140, 190, 235), (190, 170, 120),
          (("sign", "okay we have Greek script on this sign it says Thessaloniki", "language"),
           ("bollard", "the bollard is white with a black top and a yellow reflector", "bollards"),
           ("trees", "olive trees and dry scrubland so Mediterranean climate", "vegetation"),
           ("distance_sign", "blue sign with the Latin transliteration underneath which Greece always does", "signs")),
          "Κατερίνη"),
    Place("Key West", "Key West", "United States", "US", 24.5551, -81.7800, "Latin", "yellow", False,
          (120, 180, 240), (200, 190, 150),
          (("road", "double yellow center lines and white edge lines very American", "road markings"),
           ("sign", "the green guide sign says Key West", "signs"),
           ("pole", "wooden utility pole with a transformer can", "utility poles"),
           ("trees", "palm trees everywhere so this is really far south maybe Florida", "vegetation")),
          "Marathon"),
    Place("Tartu", "Tartu", "Estonia", "EE", 58.3776, 26.7290, "Latin", "white", False,
          (170, 195, 220), (110, 140, 80),
          (("sign", "the sign says Tartu that is Estonian", "language"),
           ("bollard", "Estonian bollard white with a black stripe and a red reflector", "bollards"),
           ("trees", "lots of birch and spruce so northern Europe", "vegetation"),
           ("distance_sign", "and the distance sign to Tallinn that seals it", "signs")),
          "Tallinn"),
    Place("Kraków", "Kraków", "Poland", "PL", 50.0647, 19.9450, "Latin", "white", False,
          (160, 190, 225), (120, 145, 85),
          (("sign", "the sign says Krakow with the Polish accent on the o", "language"),
           ("bollard", "Polish bollard white with a black band and a red reflector", "bollards"),
           ("pole", "the concrete pole with the little holes you see in Poland a lot", "utility poles"),
           ("distance_sign", "white direction sign with the Katowice distance", "signs")),
          "Katowice"),
    Place("Bergen", "Bergen", "Norway", "NO", 60.3913, 5.3221, "Latin", "yellow", False,
          (150, 180, 210), (90, 120, 80),
          (("road", "yellow center line in northern Europe that is Norway", "road markings"),
           ("bollard", "black bollard with a yellow reflector very Norwegian", "bollards"),
           ("sign", "the sign says Bergen", "signs"),
           ("mountains", "fjord landscape with steep green mountains", "landscape")),
          "Voss"),
    Place("São Paulo", "São Paulo", "Brazil", "BR", -23.5505, -46.6333, "Latin", "yellow", False,
          (140, 185, 230), (170, 120, 90),
          (("sign", "Portuguese sign with the tilde it says Sao Paulo", "language"),
           ("road", "yellow center lines in South America", "road markings"),
           ("pole", "the concrete pole with the cross section look is Brazilian", "utility poles"),
           ("trees", "red soil and tropical trees", "vegetation")),
          "Campinas"),
    Place("Sofia", "София", "Bulgaria", "BG", 42.6977, 23.3219, "Cyrillic", "white", False,
          (150, 185, 225), (150, 150, 100),
          (("sign", "Cyrillic sign that says Sofia", "language"),
           ("distance_sign", "no Kazakh or Ukrainian letters and the signs look Balkan", "language"),
           ("bollard", "the bollard is white with a black band", "bollards"),
           ("mountains", "Vitosha mountain in the background", "landscape")),
          "Пловдив"),
    Place("Lviv", "Львів", "Ukraine", "UA", 49.8397, 24.0297, "Cyrillic", "white", False,
          (165, 190, 220), (115, 140, 85),
          (("sign", "Cyrillic with the Ukrainian i with two dots it says Lviv", "language"),
           ("distance_sign", "the direction sign with the Ukrainian spelling confirms it", "signs"),
           ("pole", "concrete poles with the holes again post soviet", "utility poles"),
           ("trees", "flat farmland and poplar trees", "vegetation")),
          "Тернопіль"),
    Place("Belgrade", "Београд", "Serbia", "RS", 44.7866, 20.4489, "Cyrillic", "white", False,
          (155, 185, 220), (140, 145, 95),
          (("sign", "Serbian Cyrillic this says Beograd", "language"),
           ("bollard", "white bollard with a black stripe and red reflector", "bollards"),
           ("distance_sign", "the sign has the Serbian letter that only Serbia uses", "language"),
           ("building", "red roof houses very Balkan", "architecture")),
          "Нови Сад"),
    Place("Tbilisi", "თბილისი", "Georgia", "GE", 41.7151, 44.8271, "Georgian", "white", False,
          (150, 185, 225), (160, 150, 110),
          (("sign", "this is the Georgian alphabet the sign says Tbilisi", "language"),
           ("distance_sign", "and the distance sign to Batumi also in Georgian", "signs"),
           ("mountains", "Caucasus mountains on the horizon", "landscape"),
           ("pole", "the concrete utility pole looks post soviet", "utility poles")),
          "ბათუმი"),
    Place("Cape Town", "Cape Town", "South Africa", "ZA", -33.9249, 18.4241, "Latin", "yellow", True,
          (130, 180, 235), (180, 160, 110),
          (("road", "yellow edge lines and we drive on the left", "driving side"),
           ("sign", "the sign says Cape Town", "signs"),
           ("mountains", "that flat topped mountain is Table Mountain", "landscape"),
           ("pole", "wooden pole with the bent top", "utility poles")),
          "Stellenbosch"),
    Place("Christchurch", "Christchurch", "New Zealand", "NZ", -43.5321, 172.6362, "Latin", "white", True,
          (140, 185, 230), (100, 140, 80),
          (("road", "left hand traffic with white center lines", "driving side"),
           ("sign", "the sign says Christchurch", "signs"),
           ("bollard", "the New Zealand bollard white with a red band", "bollards"),
           ("trees", "green pasture and hedges", "vegetation")),
          "Ashburton"),
    Place("Reykjavík", "Reykjavík", "Iceland", "IS", 64.1466, -21.9426, "Latin", "white", False,
          (175, 195, 215), (90, 100, 80),
          (("sign", "Icelandic letters on the sign it says Reykjavik", "language"),
           ("bollard", "yellow and black bollard with a reflector", "bollards"),
           ("mountains", "no trees at all and volcanic landscape", "landscape"),
           ("distance_sign", "distance sign to Selfoss", "signs")),
          "Selfoss"),
    Place("Ulaanbaatar", "Улаанбаатар", "Mongolia", "MN", 47.8864, 106.9057, "Cyrillic", "white", False,
          (120, 170, 235), (170, 160, 110),
          (("sign", "Mongolian Cyrillic the sign says Ulaanbaatar", "language"),
           ("distance_sign", "the sign has the Mongolian letters with the bars", "language"),
           ("mountains", "empty steppe and rolling hills", "landscape"),
           ("building", "white gers by the road", "architecture")),
          "Дархан"),
    Place("Mendoza", "Mendoza", "Argentina", "AR", -32.8895, -68.8458, "Latin", "yellow", False,
          (135, 185, 235), (185, 165, 120),
          (("sign", "Spanish sign that says Mendoza", "language"),
           ("road", "yellow center line and white edges South America", "road markings"),
           ("mountains", "the Andes right there", "landscape"),
           ("trees", "vineyards and dry climate", "vegetation")),
          "San Rafael"),
)
