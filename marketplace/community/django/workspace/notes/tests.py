from django.test import TestCase
from django.urls import reverse

from .models import Note


class NotesTests(TestCase):
    def test_health(self):
        response = self.client.get(reverse("health"))
        self.assertEqual(response.json(), {"status": "ok", "notes": 0})

    def test_adding_a_note_through_the_form(self):
        response = self.client.post(reverse("index"), {"title": "first", "body": "hello"})
        self.assertRedirects(response, reverse("index"))
        self.assertEqual(Note.objects.get().title, "first")
        self.assertContains(self.client.get(reverse("index")), "first")

    def test_a_note_needs_a_title(self):
        response = self.client.post(reverse("index"), {"title": "", "body": "x"})
        self.assertEqual(response.status_code, 200)
        self.assertFalse(Note.objects.exists())
