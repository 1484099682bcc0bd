package dogclassifier.mms;

import com.amazonaws.ml.mms.wlm.Model;
import com.amazonaws.ml.mms.wlm.ModelManager;
import com.amazonaws.ml.mms.wlm.WorkerState;
import com.amazonaws.ml.mms.wlm.WorkerThread;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import software.amazon.ai.mms.servingsdk.Context;
import software.amazon.ai.mms.servingsdk.ModelServerEndpoint;
import software.amazon.ai.mms.servingsdk.annotations.Endpoint;
import software.amazon.ai.mms.servingsdk.annotations.helpers.EndpointTypes;
import software.amazon.ai.mms.servingsdk.http.Request;
import software.amazon.ai.mms.servingsdk.http.Response;

/**
 * GET /ping that fails while no worker can serve.
 *
 * <p>multi-model-server's own /ping answers HTTP 200 with a body of "Unhealthy", and counts a worker
 * whose process runs but whose model never loaded as working. SageMaker reads only the status code,
 * and replaces an instance only when /ping fails: this answers 503 while models are registered and
 * none has a worker with its model loaded. An endpoint with no model registered yet (a multi-model
 * endpoint before its first POST /models) is healthy.
 */
@Endpoint(
        urlPattern = "ping",
        endpointType = EndpointTypes.INFERENCE,
        description = "SageMaker's health check: 503 while no worker has its model loaded")
public class HonestPing extends ModelServerEndpoint {

    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        ModelManager manager = ModelManager.getInstance();
        int wanted = 0;
        int serving = 0;
        for (Model model : manager.getModels().values()) {
            wanted += model.getMinWorkers();
            for (WorkerThread worker : manager.getWorkers(model.getModelName())) {
                if (worker.getState() == WorkerState.WORKER_MODEL_LOADED) {
                    serving += 1;
                }
            }
        }
        String body;
        if (wanted > 0 && serving == 0) {
            response.setStatus(503, "Service Unavailable");
            body = "{\"status\": \"Unhealthy\", \"reason\": \"no worker has its model loaded\"}";
        } else {
            body = "{\"status\": \"Healthy\", \"workers\": " + serving + "}";
        }
        response.setContentType("application/json");
        response.getOutputStream().write(body.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public void doPost(Request request, Response response, Context context) throws IOException {
        ExecutionParameters.methodNotAllowed(response, "/ping");
    }

    @Override
    public void doPut(Request request, Response response, Context context) throws IOException {
        ExecutionParameters.methodNotAllowed(response, "/ping");
    }

    @Override
    public void doDelete(Request request, Response response, Context context) throws IOException {
        ExecutionParameters.methodNotAllowed(response, "/ping");
    }
}
