"""The one set of StreamField blocks every page with a body uses.

Each block renders through its own template under ``blocks/`` and carries a preview for the editors' block
picker. Embeds are limited by the site's Content Security Policy to the video hosts it allows.
"""

from django.core.exceptions import ValidationError
from wagtail import blocks
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.embeds.blocks import EmbedBlock
from wagtail.images.blocks import ImageBlock

RICH_TEXT_FEATURES = ["h2", "h3", "bold", "italic", "link", "document-link", "ol", "ul", "hr"]


class ParagraphBlock(blocks.RichTextBlock):
    def __init__(self, **kwargs):
        super().__init__(features=RICH_TEXT_FEATURES, **kwargs)

    class Meta:
        template = "blocks/paragraph_block.html"
        icon = "pilcrow"
        label = "Rich text"
        description = "Paragraphs, sub-headings, lists and links."
        preview_value = (
            "<h2>Funding for the region's start-ups</h2><p>A new round of grants opens to member "
            "organisations in <b>Tyneside, Wearside and Teesside</b> this spring.</p>"
        )


class ImageFigureBlock(blocks.StructBlock):
    """An image with its alt text, and an optional caption and credit."""

    image = ImageBlock()
    caption = blocks.CharBlock(required=False, max_length=250)
    attribution = blocks.CharBlock(required=False, max_length=120, label="Credit")

    class Meta:
        template = "blocks/image_block.html"
        icon = "image"
        label = "Image"
        description = "A picture with alt text, a caption and a credit."
        preview_value = {"caption": "Delegates at the Quayside tech summit", "attribution": "NETN"}


class QuoteBlock(blocks.StructBlock):
    quote = blocks.TextBlock(max_length=600)
    attribution = blocks.CharBlock(required=False, max_length=120, label="Who said it")
    role = blocks.CharBlock(required=False, max_length=160, help_text="Their role and organisation.")

    class Meta:
        template = "blocks/quote_block.html"
        icon = "openquote"
        label = "Quote"
        description = "A pull quote with who said it."
        preview_value = {
            "quote": "Being part of the network put us in front of three of our first five customers.",
            "attribution": "Amara Okafor",
            "role": "Founder, Wearside Robotics",
        }


class VideoEmbedBlock(EmbedBlock):
    class Meta:
        template = "blocks/embed_block.html"
        icon = "media"
        label = "Embed"
        description = "A video from YouTube or Vimeo, by its address."
        help_text = "A YouTube or Vimeo address, e.g. https://www.youtube.com/watch?v=…"
        preview_value = "https://www.youtube.com/watch?v=aqz-KE-bpKQ"


class OptionalPageChooserBlock(blocks.PageChooserBlock):
    """A page chooser that may be left empty. When every value in a body is empty (a call to action linking to
    another address), no query is built for them: the stock block builds and compiles a page query for an empty
    list of ids on every rendering."""

    def bulk_to_python(self, values):
        if all(value is None for value in values):
            return [None] * len(values)
        return super().bulk_to_python(values)


class CallToActionBlock(blocks.StructBlock):
    """A highlighted box with a button, linking to a page of the site or to another address."""

    heading = blocks.CharBlock(max_length=120)
    text = blocks.TextBlock(required=False, max_length=400)
    button_label = blocks.CharBlock(max_length=40)
    page = OptionalPageChooserBlock(required=False, help_text="A page of this site…")
    url = blocks.URLBlock(required=False, label="or an address", help_text="…or any other address.")

    class Meta:
        template = "blocks/call_to_action_block.html"
        icon = "pick"
        label = "Call to action"
        description = "A highlighted box with a button."
        preview_value = {
            "heading": "Join the region's tech community",
            "text": "Events, perks and a place in the member directory for your whole team.",
            "button_label": "Become a member",
            "url": "https://example.org/join/",
        }

    def clean(self, value):
        value = super().clean(value)
        if bool(value.get("page")) == bool(value.get("url")):
            message = ValidationError("Choose a page or give an address, not both.")
            raise StructBlockValidationError(block_errors={"page": message})
        return value


class BaseStreamBlock(blocks.StreamBlock):
    """The blocks a page body is made of, shared by every page type."""

    paragraph = ParagraphBlock()
    image = ImageFigureBlock()
    quote = QuoteBlock()
    embed = VideoEmbedBlock()
    call_to_action = CallToActionBlock()
