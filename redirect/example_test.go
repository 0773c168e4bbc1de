package redirect_test

import (
	"fmt"

	"github.com/linkd/linkd"
	"github.com/linkd/linkd/redirect"
)

func ExampleParse() {
	r, err := redirect.Parse("plaidlink://exit?status=requires_credentials&error_code=ITEM_LOGIN_REQUIRED&request_id=m8MDnv9okwxFNBV")
	if err != nil {
		panic(err)
	}
	fmt.Println(r.GetExit().GetStatus(), r.GetExit().GetError().GetErrorCode(), r.GetExit().GetRequestId())

	_, err = redirect.Parse("plaidlink://event?event_name=OPEN&is_update_mode=maybe")
	fmt.Println(linkd.ErrorCode(err), err.(*linkd.Error).Field)
	// Output:
	// requires_credentials ITEM_LOGIN_REQUIRED m8MDnv9okwxFNBV
	// invalid is_update_mode
}
