import posixpath

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes import execution, files, selectors
from vibebox import exceptions as errors

from .serializers import MkdirSerializer, MoveSerializer

SCOPES = {"GET": [SANDBOXES_READ], "POST": [SANDBOXES_WRITE], "DELETE": [SANDBOXES_WRITE]}
TAR_TYPES = {"application/x-tar", "application/tar", "application/gzip", "application/x-gzip"}


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _sandbox(request, sandbox_id: str):
    """The caller's sandbox; `?autoResume=true` resumes it first when it is paused."""
    sandbox = selectors.sandbox_get(owner=request.user, ref=sandbox_id)
    if _flag(request, "autoResume"):
        execution.require_not_paused(sandbox, auto_resume=True)
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


class FilesView(APIView):
    """GET: list a directory. POST: upload a file (multipart or raw body) or a tar archive."""

    required_scopes = SCOPES
    parser_classes = []  # the body is read as a stream, never parsed by DRF

    @extend_schema(
        operation_id="sandboxes_files_list",
        parameters=[OpenApiParameter("path"), OpenApiParameter("recursive", OpenApiTypes.BOOL)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        path = request.query_params.get("path", "")
        entries = files.file_list(sandbox=sandbox, path=path, recursive=_flag(request, "recursive"))
        return Response({"path": files.resolve(path), "entries": entries})

    @extend_schema(
        operation_id="sandboxes_files_upload",
        request={
            "multipart/form-data": OpenApiTypes.OBJECT,
            "application/octet-stream": OpenApiTypes.BINARY,
            "application/x-tar": OpenApiTypes.BINARY,
        },
        parameters=[OpenApiParameter("path"), OpenApiParameter("mode"), OpenApiParameter("extract", OpenApiTypes.BOOL)],
        responses={201: OpenApiTypes.OBJECT},
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
            if upload.size > limit:
                raise errors.PayloadTooLarge(details={"limit": limit})
            path = django_request.POST.get("path") or request.query_params.get("path") or upload.name
            if path.endswith("/"):
                path = posixpath.join(path, posixpath.basename(upload.name))
            mode = _mode(django_request.POST.get("mode") or request.query_params.get("mode"))
            stat = files.file_upload(sandbox=sandbox, path=path, fileobj=upload, size=upload.size, mode=mode)
            return Response(_stat_body(files.resolve(path), stat), status=201)
        path = request.query_params.get("path")
        if not path:
            raise errors.ValidationFailed("Give the destination as ?path=.")
        if content_type in TAR_TYPES or _flag(request, "extract"):
            result = files.archive_upload(sandbox=sandbox, path=path, stream=django_request, limit=limit)
            return Response(result, status=201)
        size = django_request.META.get("CONTENT_LENGTH")
        if not size:
            raise errors.ValidationFailed("A raw upload needs a Content-Length (or use multipart).")
        if int(size) > limit:
            raise errors.PayloadTooLarge(details={"limit": limit})
        mode = _mode(request.query_params.get("mode"))
        stat = files.file_upload(sandbox=sandbox, path=path, fileobj=django_request, size=int(size), mode=mode)
        return Response(_stat_body(files.resolve(path), stat), status=201)


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


def _stat_body(path: str, stat) -> dict:
    return {"path": path, "size": stat.size if stat else None, "mode": f"{stat.mode:04o}" if stat else None}


class FileView(APIView):
    """GET: download. DELETE: remove. POST files/mkdir and files/move."""

    required_scopes = SCOPES

    @extend_schema(
        operation_id="sandboxes_files_download",
        parameters=[OpenApiParameter("format", enum=["raw", "tar"]), OpenApiParameter("gzip", OpenApiTypes.BOOL)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
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
        parameters=[OpenApiParameter("recursive", OpenApiTypes.BOOL)],
        responses={204: None},
    )
    def delete(self, request, sandbox_id, path):
        sandbox = _sandbox(request, sandbox_id)
        files.file_delete(sandbox=sandbox, path=path, recursive=_flag(request, "recursive"))
        return Response(status=204)

    @extend_schema(operation_id="sandboxes_files_action", request=MoveSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, sandbox_id, path):
        sandbox = _sandbox(request, sandbox_id)
        if path == "mkdir":
            body = MkdirSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            files.file_mkdir(sandbox=sandbox, path=body.validated_data["path"])
            return Response({"path": files.resolve(body.validated_data["path"])}, status=201)
        if path == "move":
            body = MoveSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            files.file_move(
                sandbox=sandbox, source=data["source"], destination=data["destination"], overwrite=data["overwrite"]
            )
            return Response({"path": files.resolve(data["destination"])})
        raise errors.MethodNotAllowed("POST works on files/mkdir and files/move; upload with POST files.")
