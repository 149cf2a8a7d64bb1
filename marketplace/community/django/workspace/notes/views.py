from django.http import JsonResponse
from django.shortcuts import redirect, render

from .forms import NoteForm
from .models import Note


def index(request):
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("index")
    return render(request, "notes/index.html", {"notes": Note.objects.all()[:50], "form": form})


def health(request):
    return JsonResponse({"status": "ok", "notes": Note.objects.count()})
