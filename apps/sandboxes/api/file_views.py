import posixpath

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes import selectors
from apps.sandboxes.services import files
from apps.sandboxes.services.exec import require_not_paused
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses
from vibebox.streambody import body_stream

from . import access
from .schema import (
    AUTO_RESUME,
    UPLOAD_RESULT,
    ArchiveUploadedSerializer,
    FileListSerializer,
    FilePathSerializer,
    FileUploadedSerializer,
    FileUploadMultipartSerializer,
)
from .serializers import MkdirSerializer, MoveSerializer

SCOPES = {"GET": [SANDBOXES_READ], "POST": [SANDBOXES_WRITE], "DELETE": [SANDBOXES_WRITE]}
TAR_TYPES = {"application/x-tar", "application/tar", "application/gzip", "application/x-gzip"}
PATH_DOC = "Relative to /workspace; an absolute path starts with a second slash (files//etc/hosts)."


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _sandbox(request, sandbox_id: str):
    """The caller's sandbox; `?autoResume=true` resumes it first when it is paused. A GET only
    resumes for a key that may write (access.read_guard)."""
    need = selectors.READ if request.method in ("GET", "HEAD") else selectors.USE
    sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=need)
    if request.method in ("GET", "HEAD"):
        access.read_guard(request, sandbox, auto_resume=_flag(request, "autoResume"))
    elif _flag(request, "autoResume"):
        require_not_paused(sandbox, auto_resume=True)
    return sandbox


def _mode(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise errors.ValidationFailed("mode is octal, like 0644 or 755.") from None
    if not 0 <= mode <= 0o7777:
        raise errors.ValidationFailed("mode is octal, like 0644 or 755.")
    return mode


def uploaded_file_write(*, sandbox, upload, path: str | None, mode: str | None) -> dict:
    """A multipart upload (Django's UploadedFile) written into the sandbox: at `path`, else under
    its own name; a `path` ending in / is a directory to put it in. POST …/files (multipart) and
    GraphQL's uploadFile share it."""
    limit = settings.VIBEBOX_UPLOAD_MAX_BYTES
    if upload.size > limit:
        raise errors.RequestTooLarge(details={"limit": limit})
    path = path or upload.name
    if path.endswith("/"):
        path = posixpath.join(path, posixpath.basename(upload.name))
    return files.file_upload(sandbox=sandbox, path=path, fileobj=upload, size=upload.size, mode=_mode(mode))


class FilesView(APIView):
    """GET: list a directory. POST: upload a file (multipart or raw body) or a tar archive."""

    required_scopes = SCOPES
    parser_classes = []  # the body is read as a stream, never parsed by DRF

    @extend_schema(
        operation_id="sandboxes_files_list",
        parameters=[
            OpenApiParameter("path", description="The directory (default /workspace); relative to /workspace."),
            OpenApiParameter("recursive", bool, description="Everything below it, not only its entries."),
            AUTO_RESUME,
        ],
        responses={200: FileListSerializer, **error_responses(400, 409)},
    )
    def get(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        path = request.query_params.get("path", "")
        entries = files.file_list(sandbox=sandbox, path=path, recursive=_flag(request, "recursive"))
        return Response(FileListSerializer({"path": files.resolve(path), "entries": entries}).data)

    @extend_schema(
        operation_id="sandboxes_files_upload",
        description="A multipart `file`, a raw body (needs ?path= and a Content-Length), or a tar archive, plain or "
        "gzipped (application/x-tar, application/gzip, or any type with ?extract=true), extracted at ?path=. "
        "A file answers {path, size, mode}, an archive {path, entries}.",
        request={
            "multipart/form-data": FileUploadMultipartSerializer,
            "application/octet-stream": OpenApiTypes.BINARY,
            "application/x-tar": OpenApiTypes.BINARY,
            "application/gzip": OpenApiTypes.BINARY,
        },
        parameters=[
            OpenApiParameter("path", description="Where to write (required for raw bodies and archives). " + PATH_DOC),
            OpenApiParameter("mode", description="Octal file mode, default 0644 (files only)."),
            OpenApiParameter("extract", bool, description="Take the body as a tar archive whatever its type."),
            AUTO_RESUME,
        ],
        responses={201: UPLOAD_RESULT, **error_responses(409, 413)},
    )
    def post(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        django_request = request._request
        limit = settings.VIBEBOX_UPLOAD_MAX_BYTES
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            upload = django_request.FILES.get("file")
            if upload is None:
                raise errors.ValidationFailed("multipart upload needs a 'file' field.")
            path = django_request.POST.get("path") or request.query_params.get("path")
            mode = django_request.POST.get("mode") or request.query_params.get("mode")
            written = uploaded_file_write(sandbox=sandbox, upload=upload, path=path, mode=mode)
            return Response(FileUploadedSerializer(written).data, status=201)
        path = request.query_params.get("path")
        if not path:
            raise errors.ValidationFailed("Give the destination as ?path=.")
        if content_type in TAR_TYPES or _flag(request, "extract"):
            result = files.archive_upload(sandbox=sandbox, path=path, stream=body_stream(django_request), limit=limit)
            return Response(ArchiveUploadedSerializer(result).data, status=201)
        size = django_request.META.get("CONTENT_LENGTH")
        if not size:
            raise errors.ValidationFailed("A raw upload needs a Content-Length (or use multipart).")
        if int(size) > limit:
            raise errors.RequestTooLarge(details={"limit": limit})
        mode = _mode(request.query_params.get("mode"))
        written = files.file_upload(
            sandbox=sandbox, path=path, fileobj=body_stream(django_request), size=int(size), mode=mode
        )
        return Response(FileUploadedSerializer(written).data, status=201)


async def _async_chunks(download):
    """Django would read a sync iterator whole into memory under ASGI: pull one chunk at a time,
    and release the engine's stream however the response ends (a client may hang up)."""
    iterator = iter(download.chunks)
    done = object()
    pull = sync_to_async(next, thread_sensitive=False)
    try:
        while (chunk := await pull(iterator, done)) is not done:
            yield chunk
    finally:
        await sync_to_async(download.close, thread_sensitive=False)()


class FileView(APIView):
    """GET: download. DELETE: remove. POST files/mkdir and files/move."""

    required_scopes = SCOPES
    # POST is served on files/mkdir and files/move only (their own routes): Allow says so.
    http_method_names = ["get", "delete", "head", "options"]

    @extend_schema(
        operation_id="sandboxes_files_download",
        description="A file comes as itself (Content-Type guessed from its name, else application/octet-stream); "
        "a directory, or anything with format=tar, as a tar (application/x-tar; application/gzip with gzip=1).",
        parameters=[
            OpenApiParameter("path", location="path", description=PATH_DOC),
            OpenApiParameter("format", enum=["raw", "tar"], description="tar: always a tar archive."),
            OpenApiParameter("gzip", bool, description="With a tar: gzip it."),
            AUTO_RESUME,
        ],
        responses={(200, "*/*"): OpenApiTypes.BINARY, **error_responses(400, 409)},
    )
    def get(self, request, sandbox_id, path):
        sandbox = _sandbox(request, sandbox_id)
        download = files.file_download(
            sandbox=sandbox, path=path, as_tar=request.query_params.get("format") == "tar", gzip=_flag(request, "gzip")
        )
        response = StreamingHttpResponse(_async_chunks(download), content_type=download.content_type)
        response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
        if download.length is not None:
            response["Content-Length"] = str(download.length)
        return response

    @extend_schema(
        operation_id="sandboxes_files_delete",
        parameters=[
            OpenApiParameter("path", location="path", description=PATH_DOC),
            OpenApiParameter("recursive", bool, description="Needed for a directory (else 409 file_conflict)."),
            AUTO_RESUME,
        ],
        responses={204: None, **error_responses(400, 409)},
    )
    def delete(self, request, sandbox_id, path):
        sandbox = _sandbox(request, sandbox_id)
        files.file_delete(sandbox=sandbox, path=path, recursive=_flag(request, "recursive"))
        return Response(status=204)

    @extend_schema(exclude=True)  # described as files/mkdir and files/move (below)
    def post(self, request, sandbox_id, path):
        sandbox = _sandbox(request, sandbox_id)
        if path == "mkdir":
            body = MkdirSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            created = files.file_mkdir(sandbox=sandbox, path=body.validated_data["path"])
            return Response(FilePathSerializer({"path": created}).data, status=201)
        if path == "move":
            body = MoveSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            moved = files.file_move(
                sandbox=sandbox, source=data["source"], destination=data["destination"], overwrite=data["overwrite"]
            )
            return Response(FilePathSerializer({"path": moved}).data)
        raise errors.MethodNotAllowed("POST works on files/mkdir and files/move; upload with POST files.")


class _FileActionView(FileView):
    """POST files/mkdir and files/move, routed apart only so that the schema describes each; FileView
    does the work. Only POST: a file named mkdir or move in /workspace is reached by its absolute
    path (files//workspace/mkdir)."""

    http_method_names = ["post", "options"]


def _file_action(name: str, body, status: int, description: str):
    def post(self, request, sandbox_id, path):
        return FileView.post(self, request, sandbox_id, path)

    post = extend_schema(
        operation_id=f"sandboxes_files_{name}",
        description=description,
        request=body,
        parameters=[AUTO_RESUME],
        responses={status: FilePathSerializer, **error_responses(409)},
    )(post)
    return type(f"File{name.title()}View", (_FileActionView,), {"post": post})


FileMkdirView = _file_action(
    "mkdir", MkdirSerializer, 201, "Creates the directory and its parents; an existing directory is fine."
)
FileMoveView = _file_action(
    "move", MoveSerializer, 200, "Renames source to destination (the new path itself), creating its parents."
)
