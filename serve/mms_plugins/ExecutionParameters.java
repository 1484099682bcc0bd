package dogclassifier.mms;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import software.amazon.ai.mms.servingsdk.Context;
import software.amazon.ai.mms.servingsdk.ModelServerEndpoint;
import software.amazon.ai.mms.servingsdk.annotations.Endpoint;
import software.amazon.ai.mms.servingsdk.annotations.helpers.EndpointTypes;
import software.amazon.ai.mms.servingsdk.http.Request;
import software.amazon.ai.mms.servingsdk.http.Response;

/**
 * GET /execution-parameters, which SageMaker batch transform asks before it sends records.
 *
 * <p>multi-model-server's frontend has no such route; this endpoint plugin adds it. The answer is
 * computed by the Python launcher (serve/config.py) and written into the MMS config file as
 * {@value #PROPERTY}, so the rules live in one place and are tested there.
 */
@Endpoint(
        urlPattern = "execution-parameters",
        endpointType = EndpointTypes.INFERENCE,
        description = "SageMaker batch transform's execution parameters")
public class ExecutionParameters extends ModelServerEndpoint {
    static final String PROPERTY = "sagemaker_execution_parameters";

    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        String body = context.getConfig().getProperty(PROPERTY);
        response.setContentType("application/json");
        if (body == null) {
            response.setStatus(500, "Internal Server Error");
            body = "{\"error\": \"the launcher did not set " + PROPERTY + "\"}";
        }
        response.getOutputStream().write(body.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public void doPost(Request request, Response response, Context context) throws IOException {
        methodNotAllowed(response, "/execution-parameters");
    }

    @Override
    public void doPut(Request request, Response response, Context context) throws IOException {
        methodNotAllowed(response, "/execution-parameters");
    }

    @Override
    public void doDelete(Request request, Response response, Context context) throws IOException {
        methodNotAllowed(response, "/execution-parameters");
    }

    static void methodNotAllowed(Response response, String path) throws IOException {
        response.setStatus(405, "Method Not Allowed");
        response.setHeader("Allow", "GET");
        response.setContentType("application/json");
        response.getOutputStream().write(
                ("{\"error\": \"" + path + " answers GET only\"}").getBytes(StandardCharsets.UTF_8));
    }
}
