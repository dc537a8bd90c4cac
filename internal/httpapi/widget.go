package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/widget"
)

// serveWidget serves the widget's module that the path names (support-chat.js, the entry, and
// the modules it imports); any other name is not found.
func serveWidget(modules *widget.Modules) gin.HandlerFunc {
	return func(c *gin.Context) {
		m := modules.Module(c.Param("module"))
		if m == nil {
			abortWith(c, kindNotFound, "No such widget module.")
			return
		}
		m.ServeHTTP(c.Writer, c.Request)
	}
}
