"""Navig's prompts, as published with the paper (github.com/SparrowZheyuan18/Navig, prompts.py).

`REASONING_PROMPT` is the dataset's instruction (annotate.prompts, the paper's own wording), so
the Reasoner is asked at inference exactly what it was fine-tuned on.
"""
from __future__ import annotations

# the paper's Reasoner instruction is the dataset's instruction: one constant for training and inference
from annotate.prompts import REASONING_PROMPT  # noqa: E402

PAPER_REASONING_PROMPT = REASONING_PROMPT

COMMENT_TEMPLATE = (
    "Analyze the {item} images to determine the region with the highest likelihood of finding this type "
    "of {item}. For each image, provide only the core reasoning in one sentence. Dont say you can't "
    "determine,try your best as its a geo-localization game.\n"
)

OSM_GEN = (
    "Analyze the image and extract only the text that is clearly visible and directly related to "
    "location-specific information, such as store signs, road signs, or other identifying markers. If the "
    "text contains any location-relevant information, return the exact text without any additional "
    "commentary. If no such text is found or if the text is unclear or irrelevant for identifying a "
    "location, return 'None'. Avoid returning any unrelated or general text\n"
)

BASE_QUERY = (
    "Suppose you are an expert in geo-localization. Given an image, guess the location of it, which "
    "contains the country, city, and its coordinates, with your answer formed as a json: "
    '{"country":"", "city":"", "latitude":, "longitude":}. Don\'t include any other information in your '
    "output. You should try your best to take a guess of each level in the json anyway, don't say you are "
    "unable to decide. Don't include unknown or empty value in the output dict, always take a guess "
    "anyway.\n\n"
)

INTRO_QUERY = (
    "Here are some analyses from other experts or other information. Please carefully review this "
    "information to help you identify the location shown in the image. Be mindful of the accuracy of the "
    "information, as it may contain errors or irrelevant search results. Your task is to discern and "
    "utilize the most valuable parts of the information. The information is as follows:\n\n"
)

REASON_QUERY_TEMPLATE = "### REASON ###: This is a reasoning process of an expert: {reason}\n"

RAG_QUERY_TEMPLATE = (
    "### GUIDEBOOK KNOWLEDGE ###: some details in this image is similar to those mentioned in a guidebook. "
    "To be specific, {rag_formed}\n"
)

COMMENT_QUERY_TEMPLATE = (
    "### DETAILS REASONING ###: Based on some detailed objects in the image, some experts have made certain "
    "inferences about the items. The inferences are as follows:{comment_formed} The above information is "
    "for reference only.\n\n"
)

OSM_QUERY_TEMPLATE = (
    "### MAP SEARCH ###: Based on the building sign and road sign in the image, we extract the textual "
    "infomation {filtered_query}. Using these texts to search on OpenStreetMap and the top 3 results are: "
    "{osm_results}. Notice that the text and the comment results might not be useful for identifying the "
    "location.\n\n"
)

OUTRO_QUERY = (
    "Using the provided information as a reference, estimate the location depicted in the image with as "
    "much accuracy and precision as possible. Aim to deduce the exact coordinates whenever feasible. Format "
    "your response strictly as JSON in the following structure:{\n"
    '    "country": "<country_name>",\n'
    '    "city": "<city_name>",\n'
    '    "latitude": <Latitude Coordinate>,\n'
    '    "longitude": <Longitude Coordinate>\n'
    "    }\n"
    "Ensure the JSON output is correctly formatted. Provide a well-informed estimate for each value, "
    "avoiding any empty fields. Do not include additional information or commentary.\n"
)

__all__ = [
    "REASONING_PROMPT", "PAPER_REASONING_PROMPT", "COMMENT_TEMPLATE", "OSM_GEN", "BASE_QUERY", "INTRO_QUERY",
    "REASON_QUERY_TEMPLATE", "RAG_QUERY_TEMPLATE", "COMMENT_QUERY_TEMPLATE", "OSM_QUERY_TEMPLATE", "OUTRO_QUERY",
]
