"""The back office's document form: Wagtail's, with each file checked by what it holds."""

from django.conf import settings
from wagtail.documents.forms import BaseDocumentForm

from config import uploads


class DocumentForm(BaseDocumentForm):
    """A document's content must be what its extension claims (a PDF is a PDF, a CSV is text and not a web page),
    since the site serves documents back by their names."""

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload and "file" in self.changed_data:
            uploads.check_document(
                upload, max_bytes=settings.WAGTAILDOCS_MAX_UPLOAD_SIZE, extensions=settings.WAGTAILDOCS_EXTENSIONS
            )
        return upload
