// The interactive API docs (/api/docs): Swagger UI, from the swagger-ui-py package's
// assets served by this service, reading this service's OpenAPI document. A file,
// not an inline script: the pages' Content-Security-Policy forbids inline script.
"use strict";

window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayOperationId: true,
    displayRequestDuration: true,
    // The default sends the document to validator.swagger.io: nothing leaves the machine.
    validatorUrl: null,
  });
});
