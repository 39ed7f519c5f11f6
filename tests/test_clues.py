import pytest

from annotate.config import CluesConfig
from annotate.stages.clues import ClueExtractor


def timed(text: str, step: float = 0.5, t0: float = 10.0) -> list[dict]:
    return [{"text": w, "start": t0 + i * step, "end": t0 + i * step + 0.4} for i, w in enumerate(text.split())]


@pytest.fixture(scope="module")
def extractor() -> ClueExtractor:
    return ClueExtractor(CluesConfig())


def test_categories_entities_and_times(extractor):
    words = timed("[Music] okay um so we have yellow plates and the Google car has an antenna "
                  "this is Kazakh text in Cyrillic probably near Almaty and they drive on the left "
                  "with palm trees and red soil")
    clues = extractor.extract(words)
    by_text = {c.text.lower(): c for c in clues}
    assert by_text["yellow plates"].category == "licence_plate"
    assert by_text["google car"].category == "car_meta"
    assert by_text["antenna"].category == "car_meta"
    assert by_text["kazakh"].category == "demonym" and by_text["kazakh"].entity == "KZ"
    assert by_text["cyrillic"].category == "script"
    assert by_text["almaty"].category == "city" and by_text["almaty"].entity == "KZ"
    assert by_text["drive on the left"].category == "driving_side"
    assert by_text["palm trees"].category == "vegetation"
    assert by_text["red soil"].category == "terrain_soil"
    # times come from the words under the span: "yellow plates" are words 6 and 7 ("[Music]" is word 0)
    assert by_text["yellow plates"].start_s == pytest.approx(13.0) and by_text["yellow plates"].end_s == pytest.approx(13.9)
    dl = by_text["drive on the left"]
    assert dl.end_s - dl.start_s == pytest.approx(1.9)  # four words
    assert [c.start_s for c in clues] == sorted(c.start_s for c in clues)


def test_asr_tags_and_filler_are_never_clues(extractor):
    clues = extractor.extract(timed("[Music] um uh [Applause] you know like hmm [ __ ] um"))
    assert clues == []
    texts = [c.text.lower() for c in extractor.extract(timed("um the bollards uh [Music] sign"))]
    assert texts == ["bollards", "sign"]


def test_world_regions_and_shared_languages_name_no_country(extractor):
    clues = extractor.extract(timed("this is south america not latin america the signs are in portuguese "
                                    "maybe a guinea pig farm with latin letters and english but brazil plates"))
    by_text = {c.text.lower(): c for c in clues}
    assert by_text["south america"].category == "world_region" and by_text["south america"].entity is None
    assert by_text["latin america"].category == "world_region"
    assert by_text["portuguese"].category == "language" and by_text["portuguese"].entity is None
    assert by_text["english"].category == "language" and by_text["english"].entity is None
    assert by_text["latin"].category == "script"
    # the country word inside a longer phrase is not a mention of that country
    assert {c.entity for c in clues if c.entity} == {"BR"}
    assert "guinea" not in by_text and "guinea pig" not in by_text


def test_country_names_and_lowercase_pronoun(extractor):
    clues = extractor.extract(timed("let us go to brazil because of the US plates and the czech republic flag"))
    entities = [(c.text, c.category, c.entity) for c in clues if c.entity]
    assert ("brazil", "country", "BR") in entities
    assert ("US", "country", "US") in entities
    assert ("czech republic", "country", "CZ") in entities
    assert not any(c.text == "us" for c in clues)  # the lowercase pronoun is not the country
    assert extractor.pipeline_name in ("blank:en", "en_core_web_sm")


def test_words_without_times_and_empty_input(extractor):
    assert extractor.extract([]) == []
    clues = extractor.extract_text("the utility poles look Brazilian")
    assert {(c.category, c.entity) for c in clues} == {("utility_pole", None), ("demonym", "BR")}
    assert all(c.start_s is None for c in clues)


def test_configured_spacy_pipeline_is_loaded_by_path(tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "my_pipeline")
    custom = ClueExtractor(CluesConfig(spacy_model=str(tmp_path / "my_pipeline")))
    assert custom.pipeline_name == str(tmp_path / "my_pipeline")
    assert "sentencizer" in custom.nlp.pipe_names and "entity_ruler" in custom.nlp.pipe_names
    clues = custom.extract_text("yellow plates so this is kazakhstan")
    assert {(c.category, c.entity) for c in clues} == {("licence_plate", None), ("country", "KZ")}
    # a pipeline that cannot be loaded falls back to blank English with the same ruler
    fallback = ClueExtractor(CluesConfig(spacy_model=str(tmp_path / "missing")))
    assert fallback.pipeline_name == "blank:en" and fallback.extract_text("kazakhstan")[0].entity == "KZ"
