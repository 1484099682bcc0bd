package dogclassifier.mms;

import com.amazonaws.ml.mms.archive.ModelNotFoundException;
import com.amazonaws.ml.mms.http.ConflictStatusException;
import com.amazonaws.ml.mms.http.DescribeModelResponse;
import com.amazonaws.ml.mms.util.ConfigManager;
import com.amazonaws.ml.mms.util.JsonUtils;
import com.amazonaws.ml.mms.wlm.Model;
import com.amazonaws.ml.mms.wlm.ModelManager;
import com.amazonaws.ml.mms.wlm.WorkerThread;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import software.amazon.ai.mms.servingsdk.Context;
import software.amazon.ai.mms.servingsdk.ModelServerEndpoint;
import software.amazon.ai.mms.servingsdk.annotations.Endpoint;
import software.amazon.ai.mms.servingsdk.annotations.helpers.EndpointTypes;
import software.amazon.ai.mms.servingsdk.http.Request;
import software.amazon.ai.mms.servingsdk.http.Response;

/**
 * SageMaker's multi-model API (POST/GET/DELETE /models), in place of multi-model-server's own.
 *
 * <p>multi-model-server registers a model from any folder, archive or http(s) URL, and runs the
 * handler that the request or the artifact's MAR-INF/MANIFEST.json (or a legacy MANIFEST.json
 * anywhere in it) names. SageMaker only ever asks for a folder it extracted under the model root
 * (/opt/ml/models): this loads nothing else, refuses artifacts that carry a manifest or code/,
 * and registers every model with this project's handler. Scaling (PUT) is not SageMaker's contract.
 */
@Endpoint(
        urlPattern = "models",
        endpointType = EndpointTypes.MANAGEMENT,
        description = "SageMaker's multi-model API: artifacts under the model root only, never their code")
public class MultiModelApi extends ModelServerEndpoint {
    static final String ROOT_PROPERTY = "serve_model_root";
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,255}");
    private static final Pattern URL_SCHEME = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]*:.*", Pattern.DOTALL);
    private static final int MAX_ENTRIES = 10_000; // an artifact is a handful of files

    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        String[] path = path(request);
        if (path.length == 2) {
            list(request, response);
        } else if (path.length == 3) {
            describe(response, path[2]);
        } else {
            error(response, 404, "ResourceNotFoundException", "no such resource: " + request.getRequestURI());
        }
    }

    @Override
    public void doPost(Request request, Response response, Context context) throws IOException {
        if (path(request).length != 2) {
            error(response, 405, "MethodNotAllowedException", "POST /models loads a model; nothing else is posted");
            return;
        }
        Map<String, String> fields;
        try {
            fields = fields(request);
        } catch (JsonParseException | IllegalStateException | UnsupportedOperationException e) {
            error(response, 400, "BadRequestException", "the body is not a JSON object of strings");
            return;
        }
        String name = fields.get("model_name");
        if (name == null || !NAME.matcher(name).matches()) {
            error(response, 400, "BadRequestException", "model_name must be 1-256 letters, digits, '_', '.' or '-'");
            return;
        }
        if (fields.containsKey("handler") || fields.containsKey("runtime")) {
            error(response, 400, "BadRequestException", "handler and runtime cannot be chosen: every model is "
                    + "served by this endpoint's own handler");
            return;
        }
        Path root = Paths.get(context.getConfig().getProperty(ROOT_PROPERTY, "/opt/ml/models"));
        Path folder;
        try {
            folder = checkedFolder(fields.get("url"), root);
        } catch (Refusal refusal) {
            error(response, refusal.status, refusal.type, refusal.getMessage());
            return;
        }
        register(response, name, folder);
    }

    @Override
    public void doDelete(Request request, Response response, Context context) throws IOException {
        String[] path = path(request);
        if (path.length != 3) {
            error(response, 405, "MethodNotAllowedException", "DELETE /models/NAME unloads one model");
            return;
        }
        HttpResponseStatus status = ModelManager.getInstance().unregisterModel(path[2]);
        if (HttpResponseStatus.OK.equals(status)) {
            reply(response, 200, status("Model \"" + path[2] + "\" unregistered"));
        } else if (HttpResponseStatus.NOT_FOUND.equals(status)) {
            error(response, 404, "ModelNotFoundException", "Model not found: " + path[2]);
        } else {
            error(response, status.code(), "InternalServerException", "could not unload " + path[2]);
        }
    }

    @Override
    public void doPut(Request request, Response response, Context context) throws IOException {
        error(response, 405, "MethodNotAllowedException", "scaling a model's workers is not part of SageMaker's "
                + "multi-model contract");
    }

    /** The artifact folder, resolved, once it is known to be a plain model folder under the root. */
    static Path checkedFolder(String url, Path root) throws Refusal, IOException {
        if (url == null || url.isEmpty()) {
            throw new Refusal(400, "BadRequestException", "url is required: the model's folder under " + root);
        }
        if (URL_SCHEME.matcher(url).matches()) {
            throw new Refusal(400, "BadRequestException", "only a folder under " + root + " can be loaded, not a URL");
        }
        Path realRoot;
        try {
            realRoot = root.toRealPath();
        } catch (IOException e) {
            throw new Refusal(404, "ModelNotFoundException", "the model root " + root + " does not exist "
                    + "(SAGEMAKER_BASE_DIR/models): no model can be loaded");
        }
        Path folder;
        try {
            folder = Paths.get(url).toRealPath();
        } catch (IOException | InvalidPathException e) {
            throw new Refusal(404, "ModelNotFoundException", "no such model folder: " + url);
        }
        if (!folder.startsWith(realRoot) || folder.equals(realRoot)) {
            throw new Refusal(403, "ForbiddenException", url + " is not under the model root " + root
                    + " (symbolic links resolved)");
        }
        if (!Files.isDirectory(folder)) {
            throw new Refusal(400, "BadRequestException", url + " is not a folder: SageMaker loads an extracted "
                    + "model.tar.gz");
        }
        if (Files.exists(folder.resolve("code"))) {
            throw new Refusal(400, "BadRequestException", url + " carries code/: this endpoint never runs an "
                    + "artifact's code");
        }
        try (Stream<Path> entries = Files.walk(folder, 16)) {
            Iterator<Path> walk = entries.iterator();
            for (int seen = 0; walk.hasNext(); seen++) {
                String entry = String.valueOf(walk.next().getFileName());
                if (seen > MAX_ENTRIES) {
                    throw new Refusal(400, "BadRequestException", url + " holds more than " + MAX_ENTRIES
                            + " files: not a model artifact");
                }
                if (entry.equalsIgnoreCase("MAR-INF") || entry.equalsIgnoreCase("MANIFEST.json")) {
                    throw new Refusal(400, "BadRequestException", url + " carries " + entry + ": a handler of its "
                            + "own, which this endpoint never runs");
                }
            }
        }
        return folder;
    }

    private static void register(Response response, String name, Path folder) throws IOException {
        ModelManager manager = ModelManager.getInstance();
        ConfigManager config = ConfigManager.getInstance();
        try {
            // handler null: no manifest, so multi-model-server takes default_service_handler (ours)
            manager.registerModel(folder.toString(), name, null, null, 1, 100,
                    config.getDefaultResponseTimeoutSeconds(), null, config.getPreloadModel());
        } catch (ConflictStatusException e) {
            error(response, 409, "ConflictStatusException", e.getMessage());
            return;
        } catch (ModelNotFoundException e) {
            error(response, 404, "ModelNotFoundException", e.getMessage());
            return;
        } catch (Exception e) { // NOPMD: whatever registering raised, the caller gets its message, not a stack
            error(response, 500, "InternalServerException", "could not register " + name + ": " + e.getMessage());
            return;
        }
        int workers = config.getDefaultWorkers();
        HttpResponseStatus status;
        try {
            status = manager.updateModel(name, workers, workers).get();
        } catch (Exception e) { // NOPMD
            status = HttpResponseStatus.INTERNAL_SERVER_ERROR;
        }
        if (HttpResponseStatus.OK.equals(status)) {
            reply(response, 200, status("Workers scaled"));
            return;
        }
        // as multi-model-server does: a model whose workers failed (507: no room for it) is not kept
        manager.unregisterModel(name);
        error(response, status.code(), "InternalServerException", "Failed to start workers");
    }

    /** SageMaker's List Models: sorted by name, pages of `limit` (at most 100, as multi-model-server's). */
    private static void list(Request request, Response response) throws IOException {
        Map<String, String> sorted = new TreeMap<>();
        for (Map.Entry<String, Model> entry : ModelManager.getInstance().getModels().entrySet()) {
            sorted.put(entry.getKey(), entry.getValue().getModelUrl());
        }
        int limit = intParameter(request, "limit", 100);
        int start = intParameter(request, "next_page_token", 0);
        if (limit <= 0 || limit > 100) {
            limit = 100;
        }
        List<Map<String, String>> models = new ArrayList<>();
        int index = 0;
        for (Map.Entry<String, String> entry : sorted.entrySet()) {
            if (index >= start && models.size() < limit) {
                models.add(Map.of("modelName", entry.getKey(), "modelUrl", entry.getValue()));
            }
            index++;
        }
        Map<String, Object> page = new TreeMap<>();
        page.put("models", models);
        if (start + models.size() < sorted.size()) {
            page.put("nextPageToken", String.valueOf(start + models.size()));
        }
        reply(response, 200, JsonUtils.GSON_PRETTY.toJson(page));
    }

    private static int intParameter(Request request, String name, int fallback) {
        List<String> values = request.getParameter(name);
        try {
            return values == null || values.isEmpty() ? fallback : Math.max(0, Integer.parseInt(values.get(0)));
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    private static void describe(Response response, String name) throws IOException {
        ModelManager manager = ModelManager.getInstance();
        Model model = manager.getModels().get(name);
        if (model == null) {
            error(response, 404, "ModelNotFoundException", "Model not found: " + name);
            return;
        }
        DescribeModelResponse described = new DescribeModelResponse();
        described.setModelName(name);
        described.setModelUrl(model.getModelUrl());
        described.setBatchSize(model.getBatchSize());
        described.setMaxBatchDelay(model.getMaxBatchDelay());
        described.setMinWorkers(model.getMinWorkers());
        described.setMaxWorkers(model.getMaxWorkers());
        for (WorkerThread worker : manager.getWorkers(name)) {
            described.addWorker(worker.getWorkerId(), worker.getStartTime(), worker.isRunning(),
                    worker.getGpuId(), worker.getMemory());
        }
        reply(response, 200, JsonUtils.GSON_PRETTY.toJson(described));
    }

    /** model_name and url, from the JSON body SageMaker sends or from the query string. */
    private static Map<String, String> fields(Request request) throws IOException {
        Map<String, String> fields = new TreeMap<>();
        request.getParameterMap().forEach((key, values) -> fields.put(key, values.isEmpty() ? "" : values.get(0)));
        String body = body(request).trim();
        if (!body.isEmpty()) {
            JsonObject json = JsonParser.parseString(body).getAsJsonObject();
            for (Map.Entry<String, JsonElement> entry : json.entrySet()) {
                fields.put(entry.getKey(), entry.getValue().getAsString());
            }
        }
        return fields;
    }

    /**
     * The request body. The SDK's Request.getInputStream() calls ByteBuf.array(), which a direct buffer (what
     * Netty hands over here) does not have, so the body is read from the Netty request the SDK wraps.
     */
    private static String body(Request request) throws IOException {
        try {
            Field wrapped = request.getClass().getDeclaredField("req");
            wrapped.setAccessible(true);
            return ((FullHttpRequest) wrapped.get(request)).content().toString(StandardCharsets.UTF_8);
        } catch (NoSuchFieldException | IllegalAccessException | ClassCastException e) {
            return new String(request.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static String[] path(Request request) {
        String uri = request.getRequestURI();
        int query = uri.indexOf('?');
        return (query < 0 ? uri : uri.substring(0, query)).split("/");
    }

    private static String status(String message) {
        return JsonUtils.GSON_PRETTY.toJson(Map.of("status", message));
    }

    private static void error(Response response, int code, String type, String message) throws IOException {
        reply(response, code, JsonUtils.GSON_PRETTY.toJson(Map.of("code", code, "type", type, "message", message)));
    }

    private static void reply(Response response, int code, String body) throws IOException {
        response.setStatus(code);
        response.setContentType("application/json");
        response.getOutputStream().write(body.getBytes(StandardCharsets.UTF_8));
    }

    /** Why a load was refused, with the status it earns. */
    static final class Refusal extends Exception {
        static final long serialVersionUID = 1L;
        final int status;
        final String type;

        Refusal(int status, String type, String message) {
            super(message);
            this.status = status;
            this.type = type;
        }
    }
}
